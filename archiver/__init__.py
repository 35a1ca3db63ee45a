"""Archives: capability plans, building .mar files with their manifest, versions."""
