"""The notebooks' helpers: live measurements (``measure``), probes of what sleep passes compute
(``probe``), figures and widgets (``viz``) and the assignments' graders (``grading``). Built on the
core; nothing in the core imports it."""
