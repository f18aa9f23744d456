from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat.dashboard import dashboard_view
from chat.views.access import LoginView


def page(view, template: str, **options):
    """One of Django's account views, drawn with our template."""
    return view.as_view(template_name=f"account/{template}.html", **options)


urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Changing and resetting a password: Django's own views (and their default URL names).
    path(
        "account/password/",
        page(auth_views.PasswordChangeView, "password_change"),
        name="password_change",
    ),
    path(
        "account/password/done/",
        page(auth_views.PasswordChangeDoneView, "password_change_done"),
        name="password_change_done",
    ),
    path(
        "password-reset/",
        page(
            auth_views.PasswordResetView,
            "password_reset",
            email_template_name="account/password_reset_email.txt",
            subject_template_name="account/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        page(auth_views.PasswordResetDoneView, "password_reset_sent"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        page(auth_views.PasswordResetConfirmView, "password_reset_confirm"),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        page(auth_views.PasswordResetCompleteView, "password_reset_complete"),
        name="password_reset_complete",
    ),
    path("", include("chat.urls")),
]

handler404 = "chat.views.errors.not_found"
handler500 = "chat.views.errors.server_error"
