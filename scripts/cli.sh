# Sourced by every script first: usage errors are one line naming the script, on stderr, with exit status 2.
OEC_PROG="${0##*/}"

oec_usage_error() {  # MESSAGE
  echo "$OEC_PROG: $1 (see $OEC_PROG --help)" >&2
  exit 2
}

# In an option loop: `--config) oec_need_value "$@"; config="$2"; shift 2 ;;`. A following option is no value.
oec_need_value() {
  if [ $# -lt 2 ] || [[ $2 == --* ]]; then oec_usage_error "option $1 needs a value"; fi
}

# For scripts that hand their options to a Python CLI: `exec "${OEC_PYTHON_M[@]}" MODULE "$@"` runs
# `python -m MODULE "$@"` with argparse's usage errors (pytest's too) reported the same way, on one line.
OEC_PYTHON_M=(python -c '
import argparse, runpy, sys

prog, module = sys.argv.pop(1), sys.argv.pop(1)


def error(parser, message):
    parser.exit(2, f"{prog}: {message} (see {prog} --help)\n")


argparse.ArgumentParser.error = error
# Parser classes with their own error() (pytest raises its UsageError there) are defined later: patch them as they are.
argparse.ArgumentParser.__init_subclass__ = classmethod(lambda cls, **kwargs: setattr(cls, "error", error))
runpy.run_module(module, run_name="__main__", alter_sys=True)
' "$OEC_PROG")
