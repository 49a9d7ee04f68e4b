"""`sweagent inspect`: see a run's rollouts, who acted in each step, where control changed hands, what was trained.

`index.py` lists rollouts fast (trajectory outlines, eval reports); `steps.py` turns one trajectory into the step
view both front ends show; `extras.py` reads what other stages wrote about a rollout (SFT weights, judge verdicts,
analysis plots); `terminal.py` is the keyboard-driven terminal app and `html_report.py` the static report.
"""
