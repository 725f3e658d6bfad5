"""Static files storage: WhiteNoise's compressed manifest storage, non-strict.

Strict manifest storage raises on any ``{% static %}`` name missing from the
manifest, so a server started before ``collectstatic`` (tests, a fresh checkout)
would 500 on the admin. Non-strict falls back to the unhashed name instead; the
image always runs collectstatic, so production gets hashed, immutable URLs.
"""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    manifest_strict = False
