FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -e . && python setup.py build_ext --inplace
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
CMD ["clarin", "serve"]
