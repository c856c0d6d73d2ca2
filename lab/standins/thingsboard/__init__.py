"""ThingsBoard stand-in: a test fixture that speaks tb-node's network contract."""
