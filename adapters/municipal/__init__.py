"""The municipal connector: one municipality (or one mayor) hears of its deliveries on Kafka, reads each
message for its purpose, keeps a local copy (SQLite), forwards it to the municipal case system, and
acknowledges it; it deletes local copies on consent withdrawal and retention purge, and sends
aftercare-reports from a drop folder. It talks to the gateway only over HTTP and Kafka."""
