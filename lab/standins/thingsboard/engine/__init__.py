"""engine of the ThingsBoard stand-in."""
