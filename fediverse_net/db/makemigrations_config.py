"""Config used only by developers to generate migrations:

.venv/bin/tortoise -c fediverse_net.db.makemigrations_config.TORTOISE_ORM makemigrations
"""

from fediverse_net.db import tortoise_config

TORTOISE_ORM = tortoise_config("sqlite://:memory:")
