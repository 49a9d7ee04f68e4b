# Defaults for the window; `tools.env_variables` (WINDOW, OVERLAP) or registry_variables set by the config win.
_write_env WINDOW "${WINDOW:-$(_read_env WINDOW 100)}"
_write_env OVERLAP "${OVERLAP:-$(_read_env OVERLAP 2)}"
_write_env FIRST_LINE "$(_read_env FIRST_LINE 0)"
_write_env CURRENT_FILE "$(_read_env CURRENT_FILE '')"
