"""Covariate shift between trajectory groups: embed each turn, compare each group with a reference turn by turn.

Entry points: `python -m covariate_shift_analysis` (see `cli.py`, `analyze_covariate_shift.sh`),
`config.load_config` + `analysis.run_analysis` from Python, and `metrics` for the divergences themselves.
See README.md in this folder for the turn definition, truncation rule, metrics and output files.
"""
