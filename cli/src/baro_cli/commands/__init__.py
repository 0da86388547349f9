"""Each module registers its commands on ``baro_cli.app.app`` when imported."""

from baro_cli.commands import (  # noqa: F401
    answer,
    cancel,
    classify,
    clean,
    cluster,
    dlq,
    doctor,
    fetch,
    logs,
    map,
    plan,
    resume,
    run,
    services,
    submit,
)
