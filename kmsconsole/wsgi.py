"""WSGI entry points for the web server (granian, kmsconsole.core.webserver). Refuses to start without a root key
(and with an insecure SECRET_KEY).

`application` writes the access log (kmsconsole.core.accesslog); `application_without_access_log` does not
(`manage.py serve --no-access-log`, KMS_ACCESS_LOG=false).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kmsconsole.settings")

_django = get_wsgi_application()

from kmsconsole.awskms.wsgi import with_kms_fast_path  # noqa: E402 - needs the app registry loaded
from kmsconsole.core.accesslog import AccessLog, with_access_log  # noqa: E402
from kmsconsole.core.bodyreads import with_body_reads_counted  # noqa: E402
from kmsconsole.core.chunkedbody import with_chunked_bodies_read  # noqa: E402
from kmsconsole.core.startup import refuse_insecure_start  # noqa: E402

refuse_insecure_start()
# AWS SDK requests skip the console's middleware (kmsconsole.awskms.wsgi). Django trusts CONTENT_LENGTH, which
# granian leaves out for a chunked body: such a body is read first, bounded, for every interface
# (kmsconsole.core.chunkedbody). In front of both, every body read is counted per address, and a request whose
# address already has threads waiting for bodies that do not come is refused before its own is read
# (kmsconsole.core.bodyreads).
application_without_access_log = with_body_reads_counted(
    with_chunked_bodies_read(with_kms_fast_path(_django))
)
application = with_access_log(application_without_access_log, AccessLog())
