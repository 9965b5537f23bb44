"""Restricted data served at the data side: one hub-authenticated service per centre.

Server-side code of the local lab (``earthlab hub up`` starts ``python -m lab_server.restricted
<centre>`` for each centre with restricted collections); the SDK itself never imports it.

- ``_service``: the JupyterHub service (STAC API proxy, assets, quota endpoint);
- ``_ledger``: yearly quotas in km² and the SQLite ledger of charges;
- ``_signing``: signed asset URLs handed out in search results.
"""
