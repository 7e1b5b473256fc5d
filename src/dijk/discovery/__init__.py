"""API discovery: the inventory of endpoints learnt from traffic (see ``inventory``)."""
