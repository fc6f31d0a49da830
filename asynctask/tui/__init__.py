"""``asynctask top``: the live terminal view.

Layered like the daemon, so that everything worth testing is a pure function:

* ``view``   - what the user has chosen (tenant filter, highlighted queue) and how a key changes
  it: ``on_key(state, key, snapshot)`` returns the new state and at most one ``Action``;
* ``render`` - one frame from one ``stats`` snapshot and that state (rich renderables, no I/O);
* ``nodes``  - the nodes line of a cluster, from one ``nodes`` reply;
* ``keys``   - bytes from the terminal to key names, and the cbreak mode that gets them there;
* ``app``    - the loop: poll ``Client.stats`` every interval, redraw, read keys, perform actions.

Only the client and the model are imported: the view is a client like any other, and costs the
daemon one ``stats`` request per refresh and one ``nodes`` request every 5 s.
"""

from __future__ import annotations

from asynctask.tui.app import run_top

__all__ = ["run_top"]
