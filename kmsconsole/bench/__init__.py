"""`manage.py bench kms`: a load generator for the KMS endpoint over real HTTP with SigV4-signed requests.

`loadgen` is pure client code (no Django): it pre-signs a pool of requests per client process with botocore's
SigV4Auth and drives keep-alive connections with asyncio. `setup` creates what a run needs through the services,
and `moto` starts moto's KMS server under gunicorn for `--compare-moto`.
"""
