"""The municipal connector's Kafka identity: its own topic, a consumer group its ACL grants, SASL_SSL in production."""


def test_the_connector_joins_a_group_its_acl_grants_and_speaks_sasl_ssl_when_told(tmp_path):
    """deploy/k8s/kafka-users.yaml grants an organisation the groups ``<oin>.*`` and only its own topic."""
    from adapters.municipal.consumer import Config

    demo = Config(oin="00000001009990363000", bootstrap="127.0.0.1:9092")
    assert demo.group.startswith("00000001009990363000.") and demo.topic == "brb.org.00000001009990363000"
    assert demo.kafka_options() == {}  # the demo broker: plaintext on loopback
    production = Config(oin="00000001009990363000", bootstrap="kafka:9093", security_protocol="SASL_SSL",
                        sasl_username="org_00000001009990363000", sasl_password="s3cret")
    options = production.kafka_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "org_00000001009990363000" and options["ssl_context"].check_hostname
