"""Getting in and out: sign-up (open, by invitation, or closed), log-in, deleting an account.

Changing and resetting a password are Django's own views, with our templates
(chatsite/urls.py wires them).
"""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from chat import accounts, signup
from chat.errors import ChatError


class SignupForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text="Optional. Needed to reset a forgotten password by e-mail."
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class LoginView(auth_views.LoginView):
    """Django's log-in, telling the visitor how accounts are made on this site."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "signup_policy": settings.CHAT_SIGNUP}


def _refused(request, error: ChatError):
    context = {"refusal": error.message, "signup_policy": settings.CHAT_SIGNUP}
    return render(request, "registration/signup.html", context, status=error.status)


@require_http_methods(["GET", "POST"])
def signup_view(request):
    if request.user.is_authenticated:
        return redirect("chat")
    token = request.POST.get("invitation") or request.GET.get("invitation")
    try:
        signup.check(token)
    except ChatError as error:
        return _refused(request, error)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = signup.create_account(form, token)
        except ChatError as error:
            return _refused(request, error)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form, "invitation": token})


class EmailForm(forms.Form):
    email = forms.EmailField(required=False)


@login_required
@require_POST
def change_email(request):
    """Set or clear the address password resets are sent to."""
    form = EmailForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing was changed: {form.errors['email'][0]}")
        return redirect("account")
    request.user.email = form.cleaned_data["email"]
    request.user.save(update_fields=["email"])
    messages.success(request, "Your e-mail address is saved.")
    return redirect("account")


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autofocus": True})
    )

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password; nothing was deleted.")
        return password


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request):
    """Delete the signed-in user and everything theirs, after they re-enter their password."""
    form = DeleteAccountForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        accounts.delete_account(user)
        return render(request, "account/deleted.html", {"username": user.get_username()})
    status = 400 if form.is_bound else 200
    return render(request, "account/delete.html", {"form": form}, status=status)
