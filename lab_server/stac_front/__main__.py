"""``python -m lab_server.stac_front CONFIG.json``: run the lab's STAC and files front."""

from lab_server.stac_front import main

main()
