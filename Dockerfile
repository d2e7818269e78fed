# `docker compose up` builds this image: the app, compiled Cython speed-ups, curl for the health check.
FROM python:3.11-slim
# gcc + libc headers compile the speed-ups; curl is what docker-compose.yml's health check runs.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Build tools in the image itself: the project is installed without build isolation, and
# `setup.py build_ext` needs Cython importable (pip's isolated build env would be gone by then).
RUN pip install --no-cache-dir 'setuptools>=68' wheel 'Cython>=3.0'
# The runtime dependencies alone first, listed from pyproject.toml: this layer is rebuilt only when
# pyproject.toml changes, not on every source edit.
COPY pyproject.toml setup.py README.md ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
# Editable: clarin reads sql/ from the source tree (clarin/db/queries.py), which a wheel does not carry.
COPY clarin ./clarin
COPY sql ./sql
RUN CLARIN_NO_CYTHON=1 pip install --no-cache-dir --no-build-isolation --no-deps -e . \
 && CLARIN_BUILD_CACHE=off python setup.py --quiet build_ext --inplace \
 && python -c 'import clarin._speedups.phone, clarin._speedups.aggregate'
# Listen on every interface of the container (compose publishes 8080); data (embedded database when no
# DATABASE_URL, media, the development JWT secret) under /data, a volume in docker-compose.yml.
ENV HOST=0.0.0.0 PORT=8080 CLARIN_DATA_DIR=/data
EXPOSE 8080
CMD ["clarin", "serve"]
