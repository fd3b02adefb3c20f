"""The reference tech adapter: provisions storage and output port components into one SQLite database.

Modules, one concern each: `columns` (OpenMetadata columns and their SQLite types), `components` (what a
descriptor asks for, checked), `sqlite` (the SQL), `operations` (validate, provision, unprovision,
updateacl, reverse provisioning), `answers` (response bodies and logs), `inputs` (request bodies),
`tasks` (asynchronous task tokens), `app` (the Flask app) and `server` (`meshbot adapter serve`).
"""

from __future__ import annotations

STORAGE_TEMPLATE_ID = "urn:dmb:itm:sqlite-storage-provisioner:0"
OUTPUT_PORT_TEMPLATE_ID = "urn:dmb:itm:sqlite-outputport-provisioner:0"
TEMPLATE_IDS = (STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID)
URL_PREFIX = "/datamesh.specificprovisioner"
