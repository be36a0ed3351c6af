"""Console routes: keys (see kmsconsole/console/urls.py). The list, the create wizard, and the key's General
configuration tab with its actions; the other key tabs are in key_tabs.py and policy.py."""

from django.urls import URLPattern, path

from kmsconsole.console.views import keys, keys_create, keys_list

urlpatterns: list[URLPattern] = [
    path("keys/", keys_list.key_list, name="keys"),
    path("keys/create/", keys_create.key_create, name="key-create"),
    path("keys/<str:key_id>/", keys.key_detail, name="key"),
    path("keys/<str:key_id>/description/", keys.key_update_description, name="key-description"),
    path("keys/<str:key_id>/enable/", keys.key_enable, name="key-enable"),
    path("keys/<str:key_id>/disable/", keys.key_disable, name="key-disable"),
    path("keys/<str:key_id>/schedule-deletion/", keys.key_schedule_deletion, name="key-schedule-deletion"),
    path("keys/<str:key_id>/cancel-deletion/", keys.key_cancel_deletion, name="key-cancel-deletion"),
]
