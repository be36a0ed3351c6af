"""Console routes: the key policy tab and editor (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern, path

from kmsconsole.console.views import policy

POLICY = "keys/<uuid:key_id>/policy/"

urlpatterns: list[URLPattern] = [
    path(POLICY, policy.key_policy_tab, name="key-policy"),
    path(f"{POLICY}validate/", policy.key_policy_validate, name="key-policy-validate"),
    path(f"{POLICY}review/", policy.key_policy_review, name="key-policy-review"),
    path(f"{POLICY}save/", policy.key_policy_save, name="key-policy-save"),
    path(f"{POLICY}versions/", policy.key_policy_versions, name="key-policy-versions"),
    path(f"{POLICY}versions/<int:version>/restore/", policy.key_policy_restore, name="key-policy-restore"),
]
