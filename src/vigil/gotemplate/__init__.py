"""A Go text/template engine (the subset Prometheus and Alertmanager templates use).

    t = Template().parse("main", 'Hello {{ .Name | toUpper }}')
    t.execute("main", {"Name": "x"})  # -> "Hello X"

Shared by the notification pipeline (Alertmanager templates) and the rule
engine (annotation templates); callers add functions with ``Template(funcs=...)``.
"""

from vigil.gotemplate.exec import NO_VALUE, Template, go_str, truth
from vigil.gotemplate.parse import TemplateError

__all__ = ["NO_VALUE", "Template", "TemplateError", "go_str", "truth"]
