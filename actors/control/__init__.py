"""taktora.actors.control: the Thespian control plane.

Modules: ``messages`` (control messages and replies), ``supervision`` (SupervisorSpec /
ChildSpec data), ``base`` (the TaktoraActor base), ``supervisor``, ``health_monitor``,
``reconnect_policy`` and ``item_host`` (the actors). Import the actors from their modules or
from :mod:`taktora.actors`, which loads them on first access so that importing the values
does not import Thespian.
"""
