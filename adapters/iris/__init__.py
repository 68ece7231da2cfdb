"""The IRIS adapter (3RO, probation): reads an IRIS export per client and sends its RISc risk assessments
(``risk-information``) and advice reports (``probation-advice``) through the gateway, over HTTP only.

``export`` defines the export (see FORMAT.md), ``mapping`` turns it into planned sends, ``state`` keeps
what was sent in a local SQLite file, ``sender`` sends, ``cli`` is ``brb-iris``."""
