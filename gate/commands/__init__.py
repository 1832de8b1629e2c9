"""One module per ``gate`` subcommand: ``HELP``, ``configure(parser)``, ``run(args) -> int``."""
