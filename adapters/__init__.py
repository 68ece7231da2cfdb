"""Anti-corruption layers between the chain's systems and the gateway: TULP (DJI) -> contracts,
IRIS (3RO) -> contracts, and a municipal connector. They talk to the gateway only over HTTP and Kafka,
like any outside party. Built in later issues; see adapters/README.md."""
