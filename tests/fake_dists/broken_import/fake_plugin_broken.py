"""A plugin that fails on import."""

raise RuntimeError("fake_plugin_broken cannot be imported (test fixture)")
