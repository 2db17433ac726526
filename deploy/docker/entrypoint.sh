#!/bin/bash
# privid-entrypoint CMD [ARGS...]: the containers' entry point. For every
# variable PRIVID_<NAME>_FILE it reads the file (a docker or Kubernetes
# secret) into PRIVID_<NAME>, so a DSN with a password never has to sit in
# the environment of `docker inspect`; then it runs CMD. A _FILE that cannot
# be read, or is set together with PRIVID_<NAME> itself, is an error.
set -euo pipefail
while IFS='=' read -r name _; do
  case $name in PRIVID_*_FILE) ;; *) continue ;; esac
  var=${name%_FILE}
  file=${!name}
  if [ -n "${!var:-}" ]; then
    echo "privid-entrypoint: both $var and $name are set; use one" >&2
    exit 2
  fi
  [ -r "$file" ] || { echo "privid-entrypoint: $name: cannot read $file" >&2; exit 2; }
  value=$(cat "$file")
  export "$var=$value"
  unset "$name"
done < <(env)
[ $# -gt 0 ] || { echo "privid-entrypoint: no command given" >&2; exit 2; }
exec "$@"
