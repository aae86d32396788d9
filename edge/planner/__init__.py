"""The local planner: a day-ahead schedule for the EV that weighs tariffs, the house's net load, the
battery's wear and the grid's emissions against the owner's reserve and departure (docs/planner.md).

It runs outside the fast cycle: ``edge.planner.problem`` holds the typed, validated inputs,
``edge.planner.solve`` the linear (or mixed-integer) program solved by HiGHS, ``edge.planner.wear``
the battery wear model, ``edge.planner.envelope`` the flexibility envelope an aggregator adds up,
``edge.planner.forecast`` the default load forecaster and ``edge.planner.inputs`` the series that
come from a file or MQTT. The daemon runs it in ``edge.daemon.plan_task``.
"""
