"""Where a study is stored: storage URLs checked and masked, storages opened, and the artifact folder beside them."""
