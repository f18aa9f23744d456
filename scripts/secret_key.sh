# Sourced by setup.sh and run.sh: unless SECRET_KEY or SECRET_KEY_FILE is set, use this
# checkout's own key in var/secret_key, made once. Settings refuse to start without one.
if [ -z "${SECRET_KEY:-}" ] && [ -z "${SECRET_KEY_FILE:-}" ]; then
  if [ ! -s var/secret_key ]; then
    mkdir -p var
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >var/secret_key.new)
    mv var/secret_key.new var/secret_key
  fi
  export SECRET_KEY_FILE="$PWD/var/secret_key"
fi
