from raylab.cli import run

raise SystemExit(run())
