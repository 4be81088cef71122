# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
