"""One module per subcommand: ``register(subparsers)`` and ``run(args) -> int``.

:mod:`findiffusion.commands.common` holds the argument groups and validators
that several subcommands share (data options, model loading, positive numbers).
"""
