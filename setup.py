from setuptools import find_packages, setup

setup(
    name="aircast",
    version="0.1.0",
    description="IoT air-quality forecasting MLOps: MQTT → lake → SageMaker DeepAR pipeline → endpoints, on AWS or one machine",
    python_requires=">=3.11",
    packages=find_packages(include=["aircast*", "device*", "processing*", "evaluation*", "pipelines*",
                                    "deployment*", "awsrules*", "infra*", "bench*"]),
    include_package_data=True,
    package_data={"": ["*.json", "*.yaml", "*.yml", "*.csv", "*.properties", "*.sql", "*.html", "*.css"]},
    entry_points={
        "console_scripts": [
            "aircast=aircast.cli:main",
            "iot-device=device.publisher:main",
            "get-pipeline-definition=pipelines.get_pipeline_definition:main",
            "run-pipeline=pipelines.run_pipeline:main",
        ]
    },
)
