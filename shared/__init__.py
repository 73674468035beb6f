"""What every AisOpsFlow process uses; imports nothing from api, worker, scheduler, plugins or ops."""
