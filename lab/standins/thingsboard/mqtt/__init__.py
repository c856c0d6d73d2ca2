"""mqtt of the ThingsBoard stand-in."""
