from tests.fakes.fixtures import fake, fake_server, providers  # noqa: F401  (fixtures)
