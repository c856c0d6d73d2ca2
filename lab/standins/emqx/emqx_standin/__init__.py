"""EMQX 5.8 stand-in: mosquitto for MQTT plus the EMQX REST API subset the project uses."""
