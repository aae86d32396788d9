"""The aggregator link over MQTT 5: topics, payloads, commands, the disk spool and the client."""
