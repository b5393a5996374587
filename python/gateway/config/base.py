"""What every config section shares: strict, frozen models and the shape of a name."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored) and a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
