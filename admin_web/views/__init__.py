"""Blueprints, one per area: auth, inventory, slots, insight, privacy, api."""
