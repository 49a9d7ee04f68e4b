# Sourced into the agent's shell session, so what it exports stays for the model's commands.
if ! command -v python >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then
    mkdir -p /root/.oec-python-shim
    ln -sf "$(command -v python3)" /root/.oec-python-shim/python
    export PATH="$PATH:/root/.oec-python-shim"
fi
# The image's own variables (GOPATH, JAVA_HOME, CARGO_HOME, PATH entries...) live in the first process's
# environment; session-specific ones are kept as they are.
if [ -r /proc/1/environ ]; then
    while IFS= read -r -d '' assignment; do
        name="${assignment%%=*}"
        case "$name" in
            PWD|OLDPWD|LANG|LC_ALL|PYTHONPATH|ROOT|PS0|PS1|PS2|_|SHLVL|HOME|LSCOLORS|'') ;;
            PATH) export PATH="$(printf '%s' "$PATH:${assignment#PATH=}" | tr ':' '\n' | awk 'NF && !seen[$0]++' | paste -sd:)" ;;
            *) [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && export "$assignment" ;;
        esac
    done < /proc/1/environ
fi
true  # a skipped last variable must not fail the install
