"""A stand-in for Solar Proof's `apidata.php`, served over real HTTP for tests and the demo.

It follows the research digest (`solarproof-api.md`) as documented, quirks included, and is
independent of the client: nothing here imports from `mirror` outside this package, and the
core never imports it, so a bug on one side cannot cancel out the same bug on the other.

Modules: `people`/`names` (seeded Australian data), `account` (state and control surface, with
`fields`, `shift`, `journal`), `render` (the API's JSON shapes), `quirks` (old-docs behaviours),
`faults` (transport faults), `actions` (the API's actions), `admin` (control over HTTP), `app`
(ASGI), `server` (uvicorn in a thread, or in the foreground for `spmirror simulate`).
"""

from .account import Account
from .faults import FaultPlan
from .quirks import Quirks
from .server import SimulatorServer, serve_forever

__all__ = ["Account", "FaultPlan", "Quirks", "SimulatorServer", "serve_forever"]
