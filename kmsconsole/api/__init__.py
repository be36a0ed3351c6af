"""The product's REST API (DRF) under /api/v1/: the console's resources as JSON, over the same service layer.

Every request is authenticated (an API token or a console session linked to an IAM user), then run through
`kmsconsole.operations.perform()` as that principal, so it is authorized by the engine and audited.
"""
