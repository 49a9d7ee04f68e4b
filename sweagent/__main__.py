from sweagent.run.cli import entry

entry()
