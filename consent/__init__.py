"""Purpose limitation and consent: the policy catalogue (data), the decision engine, consent records.
Pure: nothing here knows about HTTP or the database."""
from consent.catalogue import Catalogue, CatalogueError, Rule, load  # noqa: F401
from consent.engine import Decision, Exchange, Released, Withheld, decide  # noqa: F401
from consent.records import ConsentRecord  # noqa: F401
