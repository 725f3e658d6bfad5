"""coffee-operator: runs the Coffee Payments Server from a CoffeeServer custom resource.

The package is split so that everything computable is a pure function
(``spec`` -> ``config`` -> ``manifests``) and only ``handlers``/``runner`` talk
to the Kubernetes API.
"""

GROUP = "coffee.example.com"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CoffeeServer"
PLURAL = "coffeeservers"
MANAGER = "coffee-operator"

__all__ = ["API_VERSION", "GROUP", "KIND", "MANAGER", "PLURAL", "VERSION"]
