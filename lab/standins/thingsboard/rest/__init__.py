"""rest of the ThingsBoard stand-in."""
