"""WSGI entry point for the web server (granian, kmsconsole.core.webserver). Refuses to start without a root key
(and with an insecure SECRET_KEY)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kmsconsole.settings")

application = get_wsgi_application()

from kmsconsole.awskms.wsgi import with_kms_fast_path  # noqa: E402 - needs the app registry loaded
from kmsconsole.core.startup import refuse_insecure_start  # noqa: E402

refuse_insecure_start()
# AWS SDK requests skip the console's middleware (kmsconsole.awskms.wsgi).
application = with_kms_fast_path(application)
