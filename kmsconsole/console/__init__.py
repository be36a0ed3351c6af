"""The web console for security admins: Django templates and htmx over the same service layer as every other
interface. A console login acts as the IAM user it is linked to (ConsoleIdentity)."""
