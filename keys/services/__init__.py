"""The keys service layer, one module per area. Every function takes the OperationContext of an operation run
through `kmsconsole.operations.perform`, resolves its key with `keys.services.access.key_for` (which authorizes
and checks the key state), and returns plain data for the interface to shape."""
