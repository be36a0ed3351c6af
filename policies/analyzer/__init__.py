"""The access analyzer and the policy simulator (issue 8): the store-facing half of policies/engine/analysis.py
and policies/engine/matrix.py.

- ``principals``: every principal the store has (each account root, each IAM user with its groups' policies,
  each role as a session of it) and ``"*"``, as the engine sees them; a principal named by ARN for the simulator.
- ``access``: the KMS actions that apply to a key's type (from the operation table), the key as a request sees it
  (its policy, grants, tags and condition values), the access matrix, and the difference a draft policy makes.
- ``findings``: the engine's policy findings and the store's own (grants without constraints, symmetric keys
  without rotation, keys pending deletion that were used in the last 30 days, access for "*" or another account).
- ``credentials``: the account's long-term access keys unused for 90 days or older than 90 days.
- ``simulator``: one request, decided by the engine exactly as a real one would be, with drafts if asked.
- ``services``: what the interfaces call, through the operation table (kmsconsole:AnalyzeKeyAccess,
  kmsconsole:ListFindings, kmsconsole:SimulatePolicy); see its docstring for who may do what.
"""
